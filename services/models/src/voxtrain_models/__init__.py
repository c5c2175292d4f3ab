"""voxtrain package."""
