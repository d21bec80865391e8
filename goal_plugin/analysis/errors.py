"""The one exception of the analysis package."""


class AnalysisError(ValueError):
    """Input that cannot be analysed; the message says what is wrong and where."""
