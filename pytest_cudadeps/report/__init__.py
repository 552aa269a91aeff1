"""The run as a whole: root causes, the summary, the JSON report, drift across hosts, CI annotations."""
