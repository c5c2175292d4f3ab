"""voxtrain webhooks: tenants' HTTPS endpoints receive TrainingStatusChanged (and optionally progress)."""
