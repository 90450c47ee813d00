"""Reports: papermill batch runner (runner), safe HTML export (export), index page (index), summaries (summary).

Kept empty of imports: notebooks import ``analysis.report.sections`` and should not pay for nbconvert.
"""
