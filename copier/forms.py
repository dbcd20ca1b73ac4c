import functools
import re
import zoneinfo
from collections.abc import Callable
from decimal import Decimal

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from brokers.instruments import PAPER_INSTRUMENTS
from brokers.models import BrokerAccount, Venue
from copier.core import DeviationUnit, LimitUnit, RiskAction, Side, Sizing
from copier.core.rules_text import parse_symbol_map, parse_symbols, parse_time_windows
from copier.core.sizing import fmt
from copier.models import CopyLink, validate_link


class CopyLinkForm(forms.Form):
    master = forms.ModelChoiceField(queryset=BrokerAccount.objects.none())
    follower = forms.ModelChoiceField(queryset=BrokerAccount.objects.none())
    multiplier = forms.DecimalField(
        max_digits=12,
        decimal_places=4,
        initial=Decimal("1"),
        help_text="Follower volume = master volume × multiplier.",
    )

    def __init__(self, *args: object, owner: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.owner = owner
        mine = BrokerAccount.objects.filter(owner=owner)
        # Every own account is offered, so a wrong pick gets validate_link's
        # specific message; anyone else's account is simply not a choice.
        for name in ("master", "follower"):
            field = self.fields[name]
            field.queryset = mine  # type: ignore[attr-defined]
            field.error_messages["invalid_choice"] = "Choose one of your own accounts."

    def clean_multiplier(self) -> Decimal:
        multiplier: Decimal = self.cleaned_data["multiplier"]
        if multiplier <= 0:
            raise forms.ValidationError("The multiplier must be greater than 0.")
        return multiplier

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if self.errors:
            return data
        link = CopyLink(
            owner=self.owner,
            master=data["master"],
            follower=data["follower"],
            sizing=Sizing.MULTIPLIER,
            sizing_value=data["multiplier"],
        )
        validate_link(link)
        self.instance = link
        return data


# --- The copy rules of one link -------------------------------------------------

SIZING_CHOICES = [
    (Sizing.MULTIPLIER.value, "Multiplier of the master's volume"),
    (Sizing.FIXED.value, "Fixed lots"),
    (Sizing.BALANCE_RATIO.value, "Balance ratio"),
    (Sizing.EQUITY_RATIO.value, "Equity ratio"),
    (Sizing.RISK_PERCENT.value, "Risk % of the follower's equity"),
    (Sizing.FIXED_NOTIONAL.value, "Fixed notional value"),
]

# What the sizing value means, per sizing mode.
SIZING_HELP = {
    Sizing.MULTIPLIER.value: "Follower lots = master lots × this value; 0.5 copies half.",
    Sizing.FIXED.value: "Lots of every copy, whatever the master trades, e.g. 0.10.",
    Sizing.BALANCE_RATIO.value: (
        "Follower lots = master lots × follower balance ÷ master balance × this value; "
        "1 keeps the same proportion."
    ),
    Sizing.EQUITY_RATIO.value: (
        "Follower lots = master lots × follower equity ÷ master equity × this value; "
        "1 keeps the same proportion."
    ),
    Sizing.RISK_PERCENT.value: (
        "Percent of the follower's equity lost if the stop loss is hit (at most 100); "
        "trades without a stop loss are not copied."
    ),
    Sizing.FIXED_NOTIONAL.value: (
        "Position value in the quote currency at the entry price, e.g. 10000 for "
        "10,000 USD of EURUSD."
    ),
}

DEVIATION_UNITS = [(DeviationUnit.POINTS.value, "points"), (DeviationUnit.PERCENT.value, "%")]
DAILY_LOSS_UNITS = [
    (LimitUnit.AMOUNT.value, "in the account currency"),
    (LimitUnit.PERCENT.value, "% of the day's starting equity"),
]
DRAWDOWN_UNITS = [
    (LimitUnit.AMOUNT.value, "in the account currency"),
    (LimitUnit.PERCENT.value, "% of the starting balance"),
]
RISK_ACTIONS = [
    ("", "—"),
    (RiskAction.STOP_OPENING.value, "Stop opening new positions"),
    (RiskAction.CLOSE_ONLY.value, "Close only: no new positions, no changes"),
    (RiskAction.CLOSE_ALL_AND_PAUSE.value, "Close all copies and pause"),
]

# Fields that must be greater than 0 when given, with the noun of their message.
POSITIVE = {
    "sizing_value": "sizing value",
    "min_master_volume": "minimum master volume",
    "max_master_volume": "maximum master volume",
    "max_open_positions": "maximum of open positions",
    "max_signal_age_ms": "maximum signal age",
    "max_price_deviation": "maximum price deviation",
    "fixed_sl_points": "fixed stop loss",
    "fixed_tp_points": "fixed take profit",
    "daily_loss_limit": "daily loss limit",
    "max_drawdown": "maximum drawdown",
}
NOT_NEGATIVE = {
    "sl_offset_points": "stop loss offset",
    "tp_offset_points": "take profit offset",
}
_AFFIX = re.compile(r"^[A-Za-z0-9._:/#-]*$")


@functools.cache
def time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


class Fieldset:
    """A titled group of a form's fields, shaped like a form for form_fields.html."""

    def __init__(self, form: forms.BaseForm, legend: str, names: list[str], hint: str = ""):
        self.form = form
        self.legend = legend
        self.names = names
        self.hint = hint

    def visible_fields(self) -> list[forms.BoundField]:
        return [self.form[name] for name in self.names]

    def hidden_fields(self) -> list[forms.BoundField]:
        return []

    def non_field_errors(self) -> list[str]:
        return []


FIELDSETS: list[tuple[str, list[str], str]] = [
    ("Sizing", ["sizing", "sizing_value", "force_min"], ""),
    (
        "Symbols",
        ["symbol_map", "master_prefix", "master_suffix", "follower_prefix", "follower_suffix"],
        "The map wins; other symbols lose the master's prefix and suffix and get the follower's.",
    ),
    (
        "Filters",
        [
            "symbols_allowed",
            "symbols_denied",
            "copy_buys",
            "copy_sells",
            "min_master_volume",
            "max_master_volume",
            "max_open_positions",
            "time_windows",
            "time_zone",
            "max_signal_age_ms",
            "max_price_deviation",
            "price_deviation_unit",
        ],
        "A new master trade is copied only if it passes every filter. Symbols are the "
        "master's, before mapping.",
    ),
    (
        "Stops",
        [
            "reverse",
            "copy_sl",
            "copy_tp",
            "fixed_sl_points",
            "fixed_tp_points",
            "sl_offset_points",
            "tp_offset_points",
        ],
        "Points are the follower symbol's smallest price step.",
    ),
    ("Modes", ["close_only", "copy_pending", "is_active"], ""),
    (
        "Risk stops",
        ["daily_loss_limit", "daily_loss_unit", "max_drawdown", "max_drawdown_unit", "risk_action"],
        "Watched on the follower account; leave a limit empty to turn it off.",
    ),
]


class CopyRulesForm(forms.ModelForm):
    """Every copy rule of one link; texts are checked with the core's parsers."""

    time_zone = forms.CharField(
        max_length=64,
        label="Time zone",
        help_text="The zone of the trading hours, as an IANA name: UTC, Europe/London, …",
        widget=forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off"}),
    )
    risk_action = forms.ChoiceField(
        choices=RISK_ACTIONS,
        required=False,
        label="When a limit is hit",
        help_text="Needed when a limit is set.",
    )

    class Meta:
        model = CopyLink
        fields = [name for _, names, _ in FIELDSETS for name in names]
        widgets = {
            "symbol_map": forms.Textarea(attrs={"rows": 3, "placeholder": "EURUSD.m=EURUSDpro"}),
            "symbols_allowed": forms.Textarea(attrs={"rows": 2, "placeholder": "EURUSD, XAUUSD"}),
            "symbols_denied": forms.Textarea(attrs={"rows": 2}),
            "time_windows": forms.Textarea(attrs={"rows": 3, "placeholder": "Mon-Fri 08:00-17:00"}),
        }
        labels = {
            "sizing": "Sizing mode",
            "sizing_value": "Sizing value",
            "force_min": "Raise to the minimum",
            "symbol_map": "Symbol map",
            "master_prefix": "Master prefix",
            "master_suffix": "Master suffix",
            "follower_prefix": "Follower prefix",
            "follower_suffix": "Follower suffix",
            "symbols_allowed": "Allowed symbols",
            "symbols_denied": "Denied symbols",
            "copy_buys": "Copy buys",
            "copy_sells": "Copy sells",
            "min_master_volume": "Minimum master volume",
            "max_master_volume": "Maximum master volume",
            "max_open_positions": "Maximum open positions",
            "time_windows": "Trading hours",
            "max_signal_age_ms": "Maximum signal age (ms)",
            "max_price_deviation": "Maximum price deviation",
            "price_deviation_unit": "Deviation unit",
            "reverse": "Reverse trades",
            "copy_sl": "Copy stop loss",
            "copy_tp": "Copy take profit",
            "fixed_sl_points": "Fixed stop loss (points)",
            "fixed_tp_points": "Fixed take profit (points)",
            "sl_offset_points": "Stop loss offset (points)",
            "tp_offset_points": "Take profit offset (points)",
            "close_only": "Close only",
            "copy_pending": "Copy pending orders",
            "is_active": "Copying on",
            "daily_loss_limit": "Daily loss limit",
            "daily_loss_unit": "Daily loss unit",
            "max_drawdown": "Maximum drawdown",
            "max_drawdown_unit": "Drawdown unit",
        }
        help_texts = {
            "force_min": "Trade the follower's minimum volume instead of skipping a copy "
            "that sizes under it.",
            "symbol_map": "One MASTER=FOLLOWER pair per line, e.g. EURUSD.m=EURUSDpro.",
            "master_prefix": "Removed from the master's symbol.",
            "master_suffix": "Removed from the master's symbol, e.g. .m",
            "follower_prefix": "Added to the follower's symbol.",
            "follower_suffix": "Added to the follower's symbol, e.g. .pro",
            "symbols_allowed": "Separated by commas or new lines; empty copies every symbol.",
            "symbols_denied": "Never copied.",
            "min_master_volume": "Lots; smaller master trades are not copied.",
            "max_master_volume": "Lots; bigger master trades are not copied.",
            "max_open_positions": "On the follower; at this count no new copies open.",
            "time_windows": "One window per line, e.g. Mon-Fri 08:00-17:00 or 22:00-06:00; "
            "empty copies around the clock.",
            "max_signal_age_ms": "Skip master trades that reach the copier later than this.",
            "max_price_deviation": "Skip when the follower's price is further than this from "
            "the master's.",
            "reverse": "Sell when the master buys; the master's take profit becomes the stop loss.",
            "fixed_sl_points": "From the entry; replaces the master's stop loss.",
            "fixed_tp_points": "From the entry; replaces the master's take profit.",
            "sl_offset_points": "Moves the copied stop loss this many points further away.",
            "tp_offset_points": "Moves the copied take profit this many points further away.",
            "close_only": "Copy closes and changes of open copies only; no new positions.",
            "copy_pending": "Copy limit and stop orders; off, only their fills are copied.",
            "is_active": "Off, the copier ignores this link's master entirely.",
            "daily_loss_limit": "Loss since the start of the day (UTC).",
            "max_drawdown": "Loss from the follower's starting balance.",
        }

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["sizing"].choices = SIZING_CHOICES  # type: ignore[attr-defined]
        self.fields["price_deviation_unit"].choices = DEVIATION_UNITS  # type: ignore[attr-defined]
        self.fields["daily_loss_unit"].choices = DAILY_LOSS_UNITS  # type: ignore[attr-defined]
        self.fields["max_drawdown_unit"].choices = DRAWDOWN_UNITS  # type: ignore[attr-defined]
        self.fields["sizing_value"].help_text = SIZING_HELP.get(
            self.sizing_mode, SIZING_HELP[Sizing.MULTIPLIER.value]
        )
        for name, value in self.initial.items():
            if isinstance(value, Decimal):
                self.initial[name] = fmt(value)  # 0.5, not 0.50000000 or 0E-8
        for name in ("max_open_positions", "max_signal_age_ms"):
            self.fields[name].min_value = None  # type: ignore[attr-defined]
            self.fields[name].validators = []  # our own message says what is allowed

    @property
    def sizing_mode(self) -> str:
        """The sizing mode the form shows: as submitted, else as saved."""
        if self.is_bound:
            submitted = self.data.get(self.add_prefix("sizing"))
            if submitted in SIZING_HELP:
                return str(submitted)
        return str(self.instance.sizing)

    @property
    def fieldsets(self) -> list[Fieldset]:
        return [Fieldset(self, legend, names, hint) for legend, names, hint in FIELDSETS]

    def _parsed(self, name: str, parse: Callable[[str], object]) -> str:
        text = str(self.cleaned_data.get(name) or "").strip()
        try:
            parse(text)
        except ValueError as e:
            raise forms.ValidationError(str(e)) from e
        return text

    def clean_symbol_map(self) -> str:
        return self._parsed("symbol_map", parse_symbol_map)

    def clean_symbols_allowed(self) -> str:
        return self._parsed("symbols_allowed", parse_symbols)

    def clean_symbols_denied(self) -> str:
        return self._parsed("symbols_denied", parse_symbols)

    def clean_time_windows(self) -> str:
        return self._parsed("time_windows", parse_time_windows)

    def clean_time_zone(self) -> str:
        name = self.cleaned_data["time_zone"].strip()
        if name not in time_zones():
            raise forms.ValidationError(
                f"“{name}” is not a time zone; write an IANA name such as UTC, "
                "Europe/London or America/New_York."
            )
        return name

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        for name, noun in POSITIVE.items():
            value = data.get(name)
            if value is not None and value <= 0:
                self.add_error(name, f"The {noun} must be greater than 0.")
        for name, noun in NOT_NEGATIVE.items():
            value = data.get(name)
            if value is not None and value < 0:
                self.add_error(name, f"The {noun} cannot be negative.")
        for name in ("master_prefix", "master_suffix", "follower_prefix", "follower_suffix"):
            affix = data.get(name)
            if affix and not _AFFIX.match(str(affix)):
                self.add_error(
                    name, f"“{affix}” can only hold letters, digits and the signs . _ : / # -"
                )
        self._check_percent("sizing_value", data.get("sizing") == Sizing.RISK_PERCENT)
        self._check_percent(
            "max_price_deviation", data.get("price_deviation_unit") == DeviationUnit.PERCENT
        )
        self._check_percent("daily_loss_limit", data.get("daily_loss_unit") == LimitUnit.PERCENT)
        self._check_percent("max_drawdown", data.get("max_drawdown_unit") == LimitUnit.PERCENT)
        low, high = data.get("min_master_volume"), data.get("max_master_volume")
        if low is not None and high is not None and low > high:
            self.add_error(
                "max_master_volume",
                f"The maximum master volume must be at least the minimum of {fmt(low)} lots.",
            )
        if "copy_buys" in data and not data.get("copy_buys") and not data.get("copy_sells"):
            self.add_error("copy_buys", "Copy buys, sells or both; with neither nothing is copied.")
        allowed = parse_symbols(str(data.get("symbols_allowed") or ""))
        both = allowed & parse_symbols(str(data.get("symbols_denied") or ""))
        if both and "symbols_allowed" in data and "symbols_denied" in data:
            self.add_error("symbols_denied", f"{', '.join(sorted(both))}: both allowed and denied.")
        has_limit = data.get("daily_loss_limit") is not None or data.get("max_drawdown") is not None
        if not data.get("risk_action"):
            if has_limit:
                self.add_error("risk_action", "Choose what happens when a limit is hit.")
            else:
                # No limit, no action: the column still holds one.
                data["risk_action"] = self.instance.risk_action or RiskAction.STOP_OPENING.value
        return data

    def _check_percent(self, name: str, is_percent: bool) -> None:
        value = self.cleaned_data.get(name)
        if is_percent and value is not None and value > 100:
            self.add_error(name, f"{fmt(value)}% is over 100%; a percentage is at most 100.")

    def _update_errors(self, errors: ValidationError) -> None:
        # The model's own checks may name fields this form does not edit (the
        # master or the follower); those belong at the top of the form.
        if hasattr(errors, "error_dict"):
            foreign = [
                message
                for field, error_list in errors.error_dict.items()
                if field != NON_FIELD_ERRORS and field not in self.fields
                for message in ValidationError(error_list).messages
            ]
            mine = {
                field: error_list
                for field, error_list in errors.error_dict.items()
                if field == NON_FIELD_ERRORS or field in self.fields
            }
            if foreign:
                mine.setdefault(NON_FIELD_ERRORS, []).extend(ValidationError(m) for m in foreign)
            errors = ValidationError(mine)
        super()._update_errors(errors)


class ResumeForm(forms.Form):
    confirm = forms.BooleanField(
        label="I checked the follower account",
        error_messages={"required": "Tick the box to confirm that copying may resume."},
    )


class PreviewForm(forms.Form):
    """A 1.00-lot master trade to run through a link's rules."""

    symbol = forms.CharField(max_length=32, label="Master symbol")
    side = forms.ChoiceField(choices=[(s.value, s.name.title()) for s in Side], initial="buy")
    price = forms.DecimalField(
        max_digits=24, decimal_places=10, label="Master price", initial=Decimal("1.08500")
    )
    sl = forms.DecimalField(
        max_digits=24, decimal_places=10, required=False, label="Master stop loss"
    )

    def __init__(self, *args: object, master: BrokerAccount, **kwargs: object) -> None:
        kwargs.setdefault("auto_id", "preview_%s")
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.catalogue = list(PAPER_INSTRUMENTS) if master.venue == Venue.PAPER else []
        if self.catalogue:
            self.fields["symbol"] = forms.ChoiceField(
                choices=[(s, s) for s in self.catalogue], initial="EURUSD", label="Master symbol"
            )

    def clean_symbol(self) -> str:
        return str(self.cleaned_data["symbol"]).strip()

    def clean_price(self) -> Decimal:
        price: Decimal = self.cleaned_data["price"]
        if price <= 0:
            raise forms.ValidationError("The price must be greater than 0.")
        return price

    def clean_sl(self) -> Decimal | None:
        sl: Decimal | None = self.cleaned_data["sl"]
        if sl is not None and sl <= 0:
            raise forms.ValidationError("The stop loss must be greater than 0.")
        return sl
