from decimal import Decimal

from django import forms

from brokers.models import BrokerAccount
from copier.core import Sizing
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
