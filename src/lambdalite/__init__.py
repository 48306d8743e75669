"""lambdalite: a self-hostable serverless platform, wire-compatible with AWS Lambda."""

__version__ = "0.1.0"
