import hashlib
import uuid
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from django import forms

from brokers.instruments import PAPER_INSTRUMENTS, paper_instrument
from brokers.models import BrokerAccount, PaperOrder, PaperPosition, Role
from copier.core import OrderType, Side
from copier.core.plan import fmt

PAPER_CURRENCIES = [("USD", "USD"), ("USDT", "USDT")]


class PaperAccountForm(forms.Form):
    label = forms.CharField(
        max_length=80, help_text="A name you will recognise, e.g. “Demo master”."
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.FOLLOWER)
    currency = forms.ChoiceField(
        choices=PAPER_CURRENCIES,
        initial="USD",
        help_text="Paper instruments are quoted in USD, so Paper balances are kept in USD or USDT.",
    )
    starting_balance = forms.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("1.00"),
        max_value=Decimal("100000000"),
        initial=Decimal("10000.00"),
    )

    def __init__(self, *args: object, owner: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.owner = owner

    def clean_label(self) -> str:
        label = self.cleaned_data["label"].strip()
        if not label:
            raise forms.ValidationError("Give the account a label.")
        if BrokerAccount.objects.filter(owner=self.owner, label__iexact=label).exists():
            raise forms.ValidationError(f"You already have an account labelled “{label}”.")
        return label


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)

    def __init__(self, *args: object, account: BrokerAccount, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.account = account

    def clean_role(self) -> str:
        role = self.cleaned_data["role"]
        leads = self.account.follower_links.count()
        follows = self.account.master_links.count()
        if role == Role.FOLLOWER and leads:
            raise forms.ValidationError(
                f"{self.account.label} leads {leads} follower(s); delete those links first."
            )
        if role == Role.MASTER and follows:
            raise forms.ValidationError(
                f"{self.account.label} copies {follows} master(s); delete those links first."
            )
        return str(role)


def new_ticket_id() -> str:
    return uuid.uuid4().hex


def manual_order_id(ticket_id: str) -> str:
    """One client order id per rendered ticket, so a double submit fills once."""
    return "TSM" + hashlib.sha256(ticket_id.encode()).hexdigest()[:23].upper()


def _positive(value: Decimal | None, what: str) -> Decimal | None:
    if value is not None and value <= 0:
        raise forms.ValidationError(f"{what} must be greater than 0.")
    return value


def _price_field(label: str, *, required: bool = True, help_text: str = "") -> forms.DecimalField:
    return forms.DecimalField(
        label=label, required=required, max_digits=24, decimal_places=10, help_text=help_text
    )


def _volume_field(help_text: str = "") -> forms.DecimalField:
    return forms.DecimalField(max_digits=20, decimal_places=8, help_text=help_text)


def _ticket_field() -> forms.RegexField:
    return forms.RegexField(label="Ticket", regex=r"^[0-9a-f]{32}$", widget=forms.HiddenInput)


class _Checked(forms.Form):
    """Volume, price, stop loss and take profit must be positive when given."""

    def clean_volume(self) -> Decimal | None:
        return _positive(self.cleaned_data["volume"], "Volume")

    def clean_price(self) -> Decimal | None:
        return _positive(self.cleaned_data["price"], "Price")

    def clean_sl(self) -> Decimal | None:
        return _positive(self.cleaned_data["sl"], "Stop loss")

    def clean_tp(self) -> Decimal | None:
        return _positive(self.cleaned_data["tp"], "Take profit")


def rejection_field(message: str, form: forms.Form) -> str | None:
    """The field a venue's refusal is about, judged by its message; None for the form."""
    for words, field in (
        ("stop loss", "sl"),
        ("take profit", "tp"),
        ("price", "price"),
        ("lots", "volume"),
        ("volume", "volume"),
        ("instrument", "symbol"),
        ("pending order is", "order_type"),
    ):
        if words in message and field in form.fields:
            return field
    return None


ORDER_TYPES = [(t.value, t.name.title()) for t in OrderType]


class TradeTicketForm(_Checked):
    symbol = forms.CharField(max_length=32, widget=forms.TextInput(attrs={"list": "symbols"}))
    side = forms.ChoiceField(choices=[(s.value, s.name.title()) for s in Side])
    volume = _volume_field(help_text="Lots")
    order_type = forms.ChoiceField(
        label="Order type",
        choices=ORDER_TYPES,
        initial=OrderType.MARKET.value,
        required=False,
        help_text="Limit and stop orders wait under Pending orders.",
    )
    price = _price_field(
        "Price", help_text="A market order fills at this price; a pending order waits at it."
    )
    sl = _price_field("Stop loss", required=False, help_text="Optional")
    tp = _price_field("Take profit", required=False, help_text="Optional")
    ticket_id = _ticket_field()

    def clean_symbol(self) -> str:
        symbol = self.cleaned_data["symbol"].strip().upper()
        if paper_instrument(symbol) is None:
            known = ", ".join(PAPER_INSTRUMENTS)
            raise forms.ValidationError(f"Unknown symbol “{symbol}”. Paper trades {known}.")
        return symbol

    def clean_order_type(self) -> str:
        # A ticket without an order type (an older page, a script) is a market order.
        return self.cleaned_data["order_type"] or OrderType.MARKET.value


class ClosePositionForm(_Checked):
    price = _price_field("Price")
    ticket_id = _ticket_field()


class PartialCloseForm(_Checked):
    volume = _volume_field()
    price = _price_field("Price")
    ticket_id = _ticket_field()


class StopsForm(_Checked):
    """New stop loss and take profit; a blank one removes it."""

    sl = _price_field("Stop loss", required=False)
    tp = _price_field("Take profit", required=False)
    ticket_id = _ticket_field()


class ModifyOrderForm(_Checked):
    price = _price_field("Price")
    sl = _price_field("Stop loss", required=False)
    tp = _price_field("Take profit", required=False)
    ticket_id = _ticket_field()


class FillOrderForm(_Checked):
    price = _price_field("Price")
    ticket_id = _ticket_field()


class CancelOrderForm(forms.Form):
    ticket_id = _ticket_field()


def _num(value: Decimal | None) -> str:
    return "" if value is None else fmt(value)


def _half(position: PaperPosition) -> str:
    """Half the position on the volume step, when both halves can stay open."""
    instrument = paper_instrument(position.symbol)
    if instrument is None:
        return ""
    step = instrument.volume_step
    half = (position.volume / 2 / step).to_integral_value(ROUND_DOWN) * step
    if half < instrument.volume_min or position.volume - half < instrument.volume_min:
        return ""
    return fmt(half)


Bound = dict[str, forms.Form]


def _form(bound: Bound, key: str, cls: type[forms.Form], initial: dict[str, object]) -> forms.Form:
    """The form the trader just sent with its errors, or a fresh one with a new ticket."""
    if key in bound:
        return bound[key]
    return cls(initial={**initial, "ticket_id": new_ticket_id()}, auto_id=f"{key}-%s")


@dataclass
class PositionRow:
    position: PaperPosition
    volume: str
    open_price: str
    sl: str
    tp: str
    stops: forms.Form
    reduce: forms.Form
    close: forms.Form


@dataclass
class OrderRow:
    order: PaperOrder
    volume: str
    price: str
    sl: str
    tp: str
    modify: forms.Form
    fill: forms.Form
    cancel: forms.Form


def position_row(p: PaperPosition, bound: Bound) -> PositionRow:
    price = fmt(p.open_price)
    return PositionRow(
        position=p,
        volume=fmt(p.volume),
        open_price=price,
        sl=_num(p.sl),
        tp=_num(p.tp),
        stops=_form(bound, f"stops-{p.pk}", StopsForm, {"sl": _num(p.sl), "tp": _num(p.tp)}),
        reduce=_form(
            bound, f"reduce-{p.pk}", PartialCloseForm, {"volume": _half(p), "price": price}
        ),
        close=_form(bound, f"close-{p.pk}", ClosePositionForm, {"price": price}),
    )


def order_row(o: PaperOrder, bound: Bound) -> OrderRow:
    price, sl, tp = fmt(o.price), _num(o.sl), _num(o.tp)
    return OrderRow(
        order=o,
        volume=fmt(o.volume),
        price=price,
        sl=sl,
        tp=tp,
        modify=_form(
            bound, f"modify-{o.pk}", ModifyOrderForm, {"price": price, "sl": sl, "tp": tp}
        ),
        fill=_form(bound, f"fill-{o.pk}", FillOrderForm, {"price": price}),
        cancel=_form(bound, f"cancel-{o.pk}", CancelOrderForm, {}),
    )


@dataclass
class ClosedRow:
    position: PaperPosition
    volume: str
    open_price: str
    close_price: str


def closed_row(p: PaperPosition) -> ClosedRow:
    """A closed position; `closed_volume` is annotated: what all its closes took."""
    closed = getattr(p, "closed_volume", None)
    return ClosedRow(p, _num(closed), fmt(p.open_price), _num(p.close_price))


MARKET_TYPES = [
    ("spot", "Spot"),
    ("swap", "USDT-margined perpetuals"),
    ("inverse", "Coin-margined perpetuals"),
]


def exchange_choices() -> list[tuple[str, str]]:
    import ccxt

    return [(exchange_id, exchange_id) for exchange_id in sorted(ccxt.exchanges)]


class LabelledAccountForm(forms.Form):
    """A new account: a label its owner has not used yet."""

    label = forms.CharField(max_length=80)

    def __init__(self, *args: object, owner: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.owner = owner

    def clean_label(self) -> str:
        label = self.cleaned_data["label"].strip()
        if BrokerAccount.objects.filter(owner=self.owner, label__iexact=label).exists():
            raise forms.ValidationError(f"You already have an account labelled “{label}”.")
        return label


class _NewAccountForm(LabelledAccountForm):
    """A new linked account, with its role."""

    role = forms.ChoiceField(choices=Role.choices, initial=Role.FOLLOWER)


class ExchangeLinkForm(_NewAccountForm):
    exchange = forms.ChoiceField(
        choices=exchange_choices,
        widget=forms.TextInput(attrs={"list": "exchanges"}),
        help_text="Type to search ccxt's exchanges, e.g. binance, bybit, okx.",
    )
    market_type = forms.ChoiceField(choices=MARKET_TYPES, initial="spot")
    api_key = forms.CharField(max_length=200, strip=True, label="API key")
    secret = forms.CharField(max_length=500, strip=True, widget=forms.PasswordInput)
    passphrase = forms.CharField(
        max_length=200,
        required=False,
        strip=True,
        widget=forms.PasswordInput,
        help_text="Only for exchanges that give one with the key (OKX, KuCoin, …).",
    )
    sandbox = forms.BooleanField(required=False, label="Use the exchange's testnet")

    def clean(self) -> dict[str, object]:
        import ccxt

        from brokers.venues.ccxt.capabilities import capabilities

        data = super().clean() or {}
        exchange_id = data.get("exchange")
        if not exchange_id:
            return data
        if capabilities(str(exchange_id)).needs_passphrase and not data.get("passphrase"):
            self.add_error("passphrase", f"{exchange_id} needs the passphrase of the API key.")
        if data.get("sandbox") and "test" not in getattr(ccxt, str(exchange_id))().urls:
            self.add_error("sandbox", f"ccxt knows no testnet for {exchange_id}.")
        return data


class Mt5LinkForm(_NewAccountForm):
    login = forms.IntegerField(
        min_value=1, max_value=2**63 - 1, help_text="Your MetaTrader 5 account number."
    )
    password = forms.CharField(
        max_length=100,
        widget=forms.PasswordInput,
        help_text="The master (trading) password, or the investor (read-only) password for "
        "an account that only leads.",
    )
    server = forms.CharField(
        max_length=100,
        strip=True,
        help_text="Exactly as your broker writes it, e.g. “ICMarketsSC-Demo”.",
    )

    def clean_server(self) -> str:
        server = self.cleaned_data["server"]
        if any(c.isspace() for c in server):
            raise forms.ValidationError("A server name has no spaces; copy it from the terminal.")
        return server


class ExchangeSettingsForm(forms.Form):
    """What the copier needs to know about an exchange account beyond its key."""

    watch_symbols = forms.CharField(
        required=False,
        max_length=400,
        label="Symbols to watch",
        help_text="Masters: the markets you trade, space-separated (e.g. BTC/USDT ETH/USDT). "
        "This exchange lists fills per market, so fills on other markets are seen "
        "only while the websocket is up.",
    )
    leverage = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=125,
        help_text="Followers on derivatives: set on the exchange before the first copy of "
        "each market. Leave empty to keep the exchange's setting.",
    )
    margin_mode = forms.ChoiceField(
        required=False,
        choices=BrokerAccount._meta.get_field("margin_mode").choices,
        help_text="Followers on derivatives: cross or isolated margin per market.",
    )

    def __init__(self, *args: object, account: BrokerAccount, markets: set[str], **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.account = account
        self.markets = markets

    def clean_watch_symbols(self) -> str:
        symbols = self.cleaned_data["watch_symbols"].replace(",", " ").split()
        unknown = [s for s in symbols if self.markets and s not in self.markets]
        if unknown:
            raise forms.ValidationError(
                f"{', '.join(unknown)}: not a {self.account.market_type} market on "
                f"{self.account.exchange} (use the exchange's symbol, e.g. BTC/USDT)."
            )
        return " ".join(dict.fromkeys(symbols))

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if self.account.market_type == "spot" and (data.get("leverage") or data.get("margin_mode")):
            raise forms.ValidationError(
                "Leverage and margin mode apply to derivatives accounts only."
            )
        return data
