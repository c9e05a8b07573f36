"""citrixagent: Sectigo Certificate Manager certificates on NetScaler, unattended."""

__version__ = "0.1.0"
