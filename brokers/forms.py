import hashlib
import uuid
from decimal import Decimal

from django import forms

from brokers.instruments import PAPER_INSTRUMENTS, paper_instrument
from brokers.models import BrokerAccount, Role
from copier.core import Side

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


class TradeTicketForm(forms.Form):
    symbol = forms.CharField(max_length=32, widget=forms.TextInput(attrs={"list": "symbols"}))
    side = forms.ChoiceField(choices=[(s.value, s.name.title()) for s in Side])
    volume = forms.DecimalField(max_digits=20, decimal_places=8, help_text="Lots")
    price = forms.DecimalField(
        max_digits=24, decimal_places=10, help_text="Paper fills at this price"
    )
    ticket_id = forms.RegexField(regex=r"^[0-9a-f]{32}$", widget=forms.HiddenInput)

    def clean_symbol(self) -> str:
        symbol = self.cleaned_data["symbol"].strip().upper()
        if paper_instrument(symbol) is None:
            known = ", ".join(PAPER_INSTRUMENTS)
            raise forms.ValidationError(f"Unknown symbol “{symbol}”. Paper trades {known}.")
        return symbol

    def clean_volume(self) -> Decimal:
        volume: Decimal = self.cleaned_data["volume"]
        if volume <= 0:
            raise forms.ValidationError("Volume must be greater than 0.")
        return volume

    def clean_price(self) -> Decimal:
        price: Decimal = self.cleaned_data["price"]
        if price <= 0:
            raise forms.ValidationError("Price must be greater than 0.")
        return price


class ClosePositionForm(forms.Form):
    price = forms.DecimalField(max_digits=24, decimal_places=10)
    ticket_id = forms.RegexField(regex=r"^[0-9a-f]{32}$", widget=forms.HiddenInput)

    def clean_price(self) -> Decimal:
        price: Decimal = self.cleaned_data["price"]
        if price <= 0:
            raise forms.ValidationError("Price must be greater than 0.")
        return price
