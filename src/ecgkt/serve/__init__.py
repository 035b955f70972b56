"""The prediction service: FastAPI app (`app.create_app`), upload checks (`uploads`), the upload page."""
