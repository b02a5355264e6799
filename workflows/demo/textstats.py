"""Report formatting, imported by the Snakefile (a module next to it)."""

CODE_VERSION = "demo-v1"


def report_header(title: str) -> str:
    return f"# {title} (report code {CODE_VERSION})"
