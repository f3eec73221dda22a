"""Reports: contact sheets and the static HTML page of an attack's findings."""

from fissure.report.sheets import contact_sheet

__all__ = ["contact_sheet", "write_findings_page"]


def __getattr__(name: str):
    """Import the findings page (and so the attacks and torch) only when asked for:
    contact sheets serve the light world commands too."""
    if name == "write_findings_page":
        from fissure.report.findings_page import write_findings_page

        return write_findings_page
    raise AttributeError(f"module 'fissure.report' has no attribute {name!r}")
