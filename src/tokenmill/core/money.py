"""Money: exact integers, never floats.

Token prices are quoted per 1M tokens; a price of P currency units per 1M tokens is P x 1e6
micro-units per 1M tokens, which is exactly P x 1e6 pico-units (1e-12) per token. So a charge,
tokens x rate, is an exact integer of pico-units, and sums of charges stay exact however many
there are. Rounding happens once, where money is shown or invoiced, half to even.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

PICO = 10**12  # pico-units per currency unit
MICRO = 10**6  # micro-units per currency unit
MICRO_PER_PICO = 10**6  # pico-units per micro-unit
# Minor units per currency (ISO 4217 exponents); others default to 2.
_EXPONENT = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3}


def exponent(currency: str) -> int:
    return _EXPONENT.get(currency.upper(), 2)


def decimal_string(value: object, where: str) -> Decimal:
    """A money figure given as data: a finite decimal *string*, never a float or a bare int
    that may have passed through one."""
    if not isinstance(value, str):
        raise ValueError(f'{where}: money is given as decimal strings ("0.08"), got {value!r}')
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{where}: not a decimal: {value!r}") from None
    if not parsed.is_finite():
        raise ValueError(f"{where}: not a finite number: {value!r}")
    return parsed


def parse_rate(text: str | int | Decimal) -> int:
    """A price per 1M tokens ("0.15") as pico-units per token (150_000). Exact or refused:
    a price finer than a micro-unit per 1M tokens cannot be represented and is an error."""
    if isinstance(text, float):
        raise TypeError("prices are decimal strings, never floats")
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise ValueError(f"not a price: {text!r}") from None
    micros = value * 10**6
    if value < 0 or micros != micros.to_integral_value():
        raise ValueError(f"price {text} must be >= 0 with at most 6 decimals")
    return int(micros)


def parse_amount(text: str | Decimal, unit: int = PICO) -> int:
    """An amount of money ("10.50") in units of 1/`unit` (pico by default; micro for stored
    limits); refused if finer than that unit."""
    if isinstance(text, float):
        raise TypeError("amounts are decimal strings, never floats")
    try:
        value = Decimal(str(text)) * unit
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if value != value.to_integral_value():
        raise ValueError(f"amount {text} is finer than 1/{unit} of a unit")
    return int(value)


@dataclass(frozen=True, order=True)
class Money:
    pico: int  # exact amount in 1e-12 currency units
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.pico, int):
            raise TypeError("Money holds an int of pico-units")

    def __add__(self, other: "Money") -> "Money":
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Money(self.pico + other.pico, self.currency)

    def decimal(self) -> Decimal:
        return Decimal(self.pico) / PICO

    def rounded(self, places: int | None = None) -> Decimal:
        """The amount rounded half to even to `places` decimals (default: minor units)."""
        places = exponent(self.currency) if places is None else places
        return self.decimal().quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)

    def text(self, places: int | None = None) -> str:
        return str(self.rounded(places))


def rate_text(pico_per_token: int) -> str:
    """A rate back as its price per 1M tokens, with 6 decimals ("0.150000")."""
    return str((Decimal(pico_per_token) / 10**6).quantize(Decimal("0.000001")))
