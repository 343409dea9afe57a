import pytest

from gaebook.errors import shows_error


def test_shows_the_expected_error_as_type_and_message(capsys):
    with shows_error(ValueError, TypeError, match="lam"):
        raise TypeError("lam must be a float")
    assert capsys.readouterr().out == "TypeError: lam must be a float\n"


def test_fails_when_nothing_is_raised_or_the_message_differs():
    with pytest.raises(AssertionError, match="nothing was raised"), shows_error(ValueError):
        pass
    with pytest.raises(AssertionError, match="without 'gamma'"), shows_error(ValueError, match="gamma"):
        raise ValueError("lam is out of range")


def test_other_errors_pass_through_and_bad_arguments_are_refused():
    with pytest.raises(KeyError), shows_error(ValueError):
        raise KeyError("x")
    with pytest.raises(TypeError, match="exception classes"), shows_error("ValueError"):  # type: ignore[arg-type]
        pass
