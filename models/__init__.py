"""Model registry and download/verification code. Weights are stored beside this file by default
(or in $SWAPSPOT_MODEL_DIR) and are never committed.

Command line: `python -m models list [--json]`, `python -m models fetch [NAME ...]`,
`python -m models verify [NAME ...]`.
"""
