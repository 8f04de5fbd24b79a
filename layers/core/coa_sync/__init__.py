"""coa-sync core: models, the pure diff, the pipeline steps and their adapters.

This package is what the Lambda layer ships; nothing here starts servers or fakes AWS.
"""
