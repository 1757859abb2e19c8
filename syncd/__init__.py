"""syncd: keeps an accounting practice's CRM and Xero (Practice Manager, Projects) in sync."""

__version__ = "0.1.0"
