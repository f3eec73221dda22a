"""Reports: contact sheets, static HTML reports and the review page."""

from fissure.report.sheets import contact_sheet

__all__ = ["contact_sheet"]
