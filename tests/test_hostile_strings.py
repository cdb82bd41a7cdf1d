"""Hostile activation strings: each is refused with a clear nnft ValueError and has no side effect."""

from __future__ import annotations

import os

import pytest
import sympy as sp

import nnft
from nnft.errors import NNFTError, ParseError
from nnft.parsing import parse_expression, parse_number, split_call

HOSTILE = [
    "__import__('pathlib').Path('PWNED').write_text('x') and z or z",
    "__import__('os').system('touch PWNED') or z",
    "open('PWNED', 'w').write('x') and z",
    "exec(\"open('PWNED','w')\") or z",
    "eval(\"open('PWNED','w')\")",
    "(lambda: open('PWNED', 'w'))() or z",
    "lambda z: z",
    "getattr(z, '__class__')",
    "z.__class__",
    "z.__class__.__mro__[1].__subclasses__()",
    "().__class__.__bases__[0].__subclasses__()",
    "[c for c in ().__class__.__bases__[0].__subclasses__()]",
    "{z: 1}",
    "[z]",
    "z[0]",
    "z if z else z",
    "(y := z)",
    "f'{z}'",
    "'z'",
    "b'z'",
    "Symbol('x')",
    "sympify('z')",
    "Function('f')(z)",
    "S('z')",
    "z.subs(z, 1)",
    "tanh.__globals__",
    "__builtins__",
    "_ + z",
    "globals()",
    "import os",
    "z; open('PWNED', 'w')",
    "z\nopen('PWNED', 'w')",
    "z and z",
    "not z",
    "z < 1",
    "z @ z",
    "z // 2",
    "z % 2",
    "z ^ 2",
    "~z",
    "tanh(z, key=1)",
    "tanh(*[z])",
    "1j * z",
    "z\x00",
    "ｚ",
    "ｅｘｅｃ('1') or z",
    "z\u200b",
    "9**9**9**9",
    "z**(10**10)",
    "z**9**9**9",
    "(z+1)**(10**6)",
    "10**10**10 * z",
    "1e99999999 * z",
    "z * 1" + "0" * 200,
    "(" * 300 + "z" + ")" * 300,
    "tanh(" * 60 + "z" + ")" * 60,
    "z" + "+z" * 1500,
    "Piecewise((z, __import__('os')), (0, True))",
    "Piecewise((z, z < 0), (0, True)).__class__",
    "Max(z, 0).args",
    "relu(z)",
    "tanhh(z)",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_string_is_refused_without_side_effect(text, tmp_path, monkeypatch):
    """The string raises a ValueError from nnft's exception family, and nothing is written to the cwd."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as info:
        nnft.activation(text)
    assert isinstance(info.value, NNFTError)
    assert len(str(info.value)) > 20
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_string_through_mlp(text, tmp_path, monkeypatch):
    """The same strings through MLP (the path of the CLI --activation) are refused the same way."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NNFTError):
        nnft.MLP(text, depth=2)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "text, match",
    [
        ("z.__class__", "attribute access"),
        ("__import__('os')", "names starting with '_'"),
        ("open('x')", "unknown function 'open'"),
        ("lambda z: z", "lambda"),
        ("z[0]", "subscript"),
        ("'z'", "string"),
        ("9**9**9**9", "beyond the limit"),
        ("z**(10**10)", "beyond the limit 100"),
        ("(" * 300 + "z" + ")" * 300, "nested|parenth"),
        ("z" + "+z" * 1500, "longer than the limit"),
        ("ｚ", "ASCII"),
        ("tanh(z, key=1)", "keyword argument"),
    ],
)
def test_parse_errors_name_the_offending_piece(text, match):
    """Messages name what is wrong; the vocabulary is listed for constructs outside it."""
    with pytest.raises(ParseError, match=match):
        parse_expression(text)


def test_refusals_list_the_vocabulary():
    """A refused construct lists the allowed vocabulary."""
    with pytest.raises(ParseError, match="allowed: numbers.*tanh"):
        parse_expression("z.real")


@pytest.mark.parametrize("text", ["__import__('os')", "z", "1e99999999", "1e-99999999", "0.1.real", "'1'", "1/0"])
def test_parse_number_refuses_non_numbers(text):
    """parse_number accepts finite real numbers only and never evaluates code."""
    with pytest.raises(ParseError):
        parse_number(text)


def test_parse_number_reads_numbers_exactly():
    """Decimals become exact rationals; constant expressions are allowed."""
    assert parse_number("0.1") == sp.Rational(1, 10)
    assert parse_number("-1e-2") == sp.Rational(-1, 100)
    assert parse_number("1/3") == sp.Rational(1, 3)
    assert parse_number("pi/4") == sp.pi / 4


def test_split_call_never_evaluates():
    """split_call returns source texts of the arguments, untouched."""
    assert split_call("leaky_relu(a=0.1)") == ("leaky_relu", [], {"a": "0.1"})
    assert split_call("monomial(3)") == ("monomial", ["3"], {})
    assert split_call("tanh") is None


VALID = {
    "tanh": sp.tanh(nnft.activations.z),
    "z*tanh(z)": nnft.activations.z * sp.tanh(nnft.activations.z),
    "Max(z, 0)": sp.Max(nnft.activations.z, 0),
    "max(z, 0)": sp.Max(nnft.activations.z, 0),
    "abs(z)": sp.Abs(nnft.activations.z),
    "Max(z - 7/10, 0)": sp.Max(nnft.activations.z - sp.Rational(7, 10), 0),
    "exp(z**2/4)": sp.exp(nnft.activations.z**2 / 4),
    "z*tanh(z) + z/2": nnft.activations.z * sp.tanh(nnft.activations.z) + nnft.activations.z / 2,
    "0.1*z + sin(z)": sp.Float(0.1) * nnft.activations.z + sp.sin(nnft.activations.z),
    "Piecewise((0, z < 0), (z, True))": sp.Piecewise((0, nnft.activations.z < 0), (nnft.activations.z, True)),
}


@pytest.mark.parametrize("text", sorted(VALID))
def test_valid_expressions_still_parse(text):
    """Documented forms keep working and give the same expression as before."""
    assert nnft.activation(text).expr == VALID[text]


def test_valid_call_forms_still_work():
    """Registry calls with numeric parameters, by position or keyword, and other spellings."""
    z = nnft.activations.z
    assert nnft.activation("leaky_relu(0.1)").expr == nnft.activation("leaky_relu", a=0.1).expr
    assert nnft.activation("leaky_relu(a=0.1)").expr == nnft.activation("leaky_relu", a=0.1).expr
    assert nnft.activation("monomial(3)").expr == z**3
    assert nnft.activation("sigmoid(z)").expr == nnft.activation("sigmoid").expr
    assert nnft.activation("tanh(x)", var=sp.Symbol("x")).expr == sp.tanh(z)
    assert nnft.activation("z" + "+z" * 900).expr == 901 * z  # long flat sums are not "deep"
