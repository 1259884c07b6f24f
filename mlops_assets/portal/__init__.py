"""The contributors' door: the upload API (``api``) and, beside it, the portal's pages, in one
FastAPI application (``app.create_app``) that ``mlops portal`` serves."""
