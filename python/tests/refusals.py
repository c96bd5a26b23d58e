"""The check every bad-argument test makes: the call raises the expected
exception, and its message holds each given word (the argument's name, the
expected value, the actual one)."""


class Refusals:
    """A ``unittest.TestCase`` mixin."""

    def refuses(self, error, words, call):
        with self.assertRaises(error) as caught:
            call()
        for w in words:
            self.assertIn(w, str(caught.exception))
