"""The MLflow Model Registry: versions, aliases, the promotion gate, registering a candidate,
attestations, and the webhook events of it all."""
