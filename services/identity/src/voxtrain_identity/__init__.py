"""voxtrain identity service: API keys and the tokens exchanged for them."""
