"""voxtrain web console: the spec's Custom Models pages over the public APIs, with live status."""
