"""The model registry adapter (MLflow): connection and retries (``client``), logging and
safely loading model files (``models``, ``model_files``), storing attestations
(``attestations``), the tag names (``tags``), a read-only view without MLflow (``reader``)
and the webhook outbox (``webhooks``). No domain decision is taken here: which version is
promoted, and why, is ``core.promotion``'s."""
