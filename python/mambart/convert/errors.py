"""The one exception type the converter raises for user mistakes and bad input files."""


class ConvertError(ValueError):
    """A checkpoint the converter cannot accept, or a mistake in how it was called.

    The message is one line meant for the user: it names the file or tensor, what was expected and what was found.
    """
