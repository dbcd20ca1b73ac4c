from decimal import Decimal

from django.conf import settings
from django.db import models
from django_cryptography.fields import encrypt

from copier.core import Side


class Venue(models.TextChoices):
    PAPER = "paper", "Paper"
    CCXT = "ccxt", "Crypto exchange"
    MT5 = "mt5", "MetaTrader 5"
    WEBHOOK = "webhook", "Signal webhook"


class Role(models.TextChoices):
    MASTER = "master", "Master"
    FOLLOWER = "follower", "Follower"
    BOTH = "both", "Master and follower"


class BrokerAccount(models.Model):
    """One account at one venue, owned by one user."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="broker_accounts"
    )
    venue = models.CharField(max_length=16, choices=Venue.choices, default=Venue.PAPER)
    label = models.CharField(max_length=80)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.FOLLOWER)
    currency = models.CharField(max_length=8, default="USD")
    # Encrypted at rest with FIELD_ENCRYPTION_KEY; Paper has none but the
    # column is the same for every venue.
    credentials = encrypt(models.TextField(blank=True, default=""))
    # Exchanges (ccxt): which exchange and market, testnet or not. The key's
    # last four characters are kept apart so pages never decrypt credentials.
    exchange = models.CharField(max_length=32, blank=True, default="")
    market_type = models.CharField(max_length=16, blank=True, default="")
    sandbox = models.BooleanField(default=False)
    credentials_hint = models.CharField(max_length=8, blank=True, default="")
    # Exchange masters: the symbols whose fills REST resyncs ask for, on
    # exchanges that list fills only per symbol (Binance). Space-separated.
    watch_symbols = models.CharField(max_length=400, blank=True, default="")
    # Derivatives followers: set on the exchange before the first order of a
    # symbol. Blank leaves the exchange's current setting alone.
    leverage = models.PositiveSmallIntegerField(null=True, blank=True)
    margin_mode = models.CharField(
        max_length=8,
        blank=True,
        default="",
        choices=[("", "Leave as is"), ("cross", "Cross"), ("isolated", "Isolated")],
    )
    # The sequence number of this account's last master event.
    event_seq = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "label"], name="unique_label_per_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.get_venue_display()})"

    @property
    def can_lead(self) -> bool:
        return self.role in (Role.MASTER, Role.BOTH)

    @property
    def can_follow(self) -> bool:
        return self.role in (Role.FOLLOWER, Role.BOTH)

    @property
    def event_source(self) -> str:
        return f"acct:{self.pk}"


class PaperAccount(models.Model):
    """The ledger of a Paper account: its balance and slippage setting."""

    account = models.OneToOneField(
        BrokerAccount, on_delete=models.CASCADE, primary_key=True, related_name="paper"
    )
    starting_balance = models.DecimalField(max_digits=20, decimal_places=2)
    balance = models.DecimalField(max_digits=20, decimal_places=2)
    # Fills are this many points worse than the reference price.
    slippage_points = models.DecimalField(max_digits=10, decimal_places=1, default=Decimal(0))

    def __str__(self) -> str:
        return f"Paper ledger of {self.account.label}"


PRICE = {"max_digits": 24, "decimal_places": 10}
OPTIONAL_PRICE = {**PRICE, "null": True, "blank": True}
SIDES = [(s.value, s.name.title()) for s in Side]


class PaperPosition(models.Model):
    account = models.ForeignKey(
        BrokerAccount, on_delete=models.CASCADE, related_name="paper_positions"
    )
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=SIDES)
    # What is still open; partial closes reduce it.
    volume = models.DecimalField(max_digits=20, decimal_places=8)
    open_price = models.DecimalField(**PRICE)
    sl = models.DecimalField(**OPTIONAL_PRICE)
    tp = models.DecimalField(**OPTIONAL_PRICE)
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_price = models.DecimalField(**OPTIONAL_PRICE)
    realized_pnl = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal(0))

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [models.Index(fields=["account", "closed_at"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.side} {self.volume} {self.symbol}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class PaperOrder(models.Model):
    """A pending (limit or stop) order on a Paper account."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        FILLED = "filled", "Filled"
        CANCELLED = "cancelled", "Cancelled"

    account = models.ForeignKey(
        BrokerAccount, on_delete=models.CASCADE, related_name="paper_orders"
    )
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=SIDES)
    order_type = models.CharField(max_length=8, choices=[("limit", "Limit"), ("stop", "Stop")])
    volume = models.DecimalField(max_digits=20, decimal_places=8)
    price = models.DecimalField(**PRICE)
    sl = models.DecimalField(**OPTIONAL_PRICE)
    tp = models.DecimalField(**OPTIONAL_PRICE)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    position = models.OneToOneField(
        PaperPosition, on_delete=models.SET_NULL, null=True, blank=True, related_name="from_order"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["account", "status"])]

    def __str__(self) -> str:
        return (
            f"#{self.pk} {self.side} {self.order_type} {self.volume} {self.symbol} @ {self.price}"
        )


class PaperRequest(models.Model):
    """Every request the Paper venue carried out, by client order id.

    The client order id is unique per account, as at a real venue, so a
    request sent twice is answered with what the first one did.
    """

    class Action(models.TextChoices):
        OPEN = "open", "Open"
        CLOSE = "close", "Close"
        REDUCE = "reduce", "Partial close"
        MODIFY = "modify", "Modify SL/TP"
        PLACE = "place", "Place pending"
        AMEND = "amend", "Modify pending"
        CANCEL = "cancel", "Cancel pending"
        FILL = "fill", "Pending filled"

    account = models.ForeignKey(
        BrokerAccount, on_delete=models.CASCADE, related_name="paper_requests"
    )
    client_order_id = models.CharField(max_length=48)
    action = models.CharField(max_length=8, choices=Action.choices)
    position = models.ForeignKey(
        PaperPosition, on_delete=models.CASCADE, null=True, blank=True, related_name="requests"
    )
    order = models.ForeignKey(
        PaperOrder, on_delete=models.CASCADE, null=True, blank=True, related_name="requests"
    )
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4)
    volume = models.DecimalField(max_digits=20, decimal_places=8)
    price = models.DecimalField(**PRICE)
    remaining = models.DecimalField(max_digits=20, decimal_places=8, default=Decimal(0))
    realized_pnl = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal(0))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "client_order_id"], name="unique_client_order_id_per_account"
            ),
        ]
        indexes = [models.Index(fields=["account", "created_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.side} {self.volume} {self.symbol} @ {self.price}"


class LinkRequest(models.Model):
    """An exchange account being validated before it is linked.

    The account itself is created only when validation succeeds, so a failed
    link leaves nothing half-saved; the credentials are wiped from the request
    once it is decided.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        RUNNING = "running", "Checking"
        SUCCEEDED = "succeeded", "Linked"
        FAILED = "failed", "Not linked"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="link_requests"
    )
    label = models.CharField(max_length=80)
    role = models.CharField(max_length=16, choices=Role.choices)
    venue = models.CharField(max_length=16, choices=Venue.choices, default=Venue.CCXT)
    exchange = models.CharField(max_length=32)
    market_type = models.CharField(max_length=16)
    sandbox = models.BooleanField(default=False)
    credentials = encrypt(models.TextField(blank=True, default=""))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.CharField(max_length=200, blank=True, default="")
    message = models.CharField(max_length=500, blank=True, default="")
    warnings = models.TextField(blank=True, default="")
    account = models.ForeignKey(
        BrokerAccount, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.exchange} {self.label}: {self.status}"

    @property
    def done(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class ExchangeMarkets(models.Model):
    """An exchange's markets as ccxt loaded them, shared by every account on it.

    Celery beat refreshes them; a connector starts from this copy instead of
    asking the exchange again, so a copier restart costs no market download.
    """

    exchange = models.CharField(max_length=32)
    market_type = models.CharField(max_length=16)
    sandbox = models.BooleanField(default=False)
    markets = models.JSONField()
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["exchange", "market_type", "sandbox"], name="one_market_cache_per_venue"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.exchange} {self.market_type}{' testnet' if self.sandbox else ''}"


class MasterWatch(models.Model):
    """How the copier watches one exchange master, and where it got to.

    `book` is the lot book (`copier.core.lots.Book`): open lots, the fills
    already seen, and the cursor a resync starts from. It is saved in the same
    transaction as the events it produced, so a restart neither repeats nor
    loses a fill.
    """

    account = models.OneToOneField(
        BrokerAccount, on_delete=models.CASCADE, primary_key=True, related_name="watch"
    )
    book = models.JSONField(default=dict)
    # "websocket", "polling", "reconnecting", "error"
    status = models.CharField(max_length=16, default="starting")
    detail = models.CharField(max_length=300, blank=True, default="")
    fills = models.PositiveBigIntegerField(default=0)
    last_fill_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"watch of {self.account}: {self.status}"


class Mt5Agent(models.Model):
    """One terminal slot of the MT5 farm and the agent process that runs it.

    `mt5_farm` assigns a slot (a terminal installation folder) to an account
    being linked, starts the agent with the slot's token, and keeps it running.
    The token (the agent's HMAC key, see `brokers.mt5.protocol`) is encrypted at
    rest: both sides need it to sign, so it cannot be stored as a hash.
    """

    class Status(models.TextChoices):
        STARTING = "starting", "Starting"
        LOGGING_IN = "logging_in", "Logging in"
        CONNECTED = "connected", "Connected"
        DISCONNECTED = "disconnected", "Disconnected from the trade server"
        REFUSED = "refused", "Login refused"
        STOPPED = "stopped", "Stopped"

    agent_id = models.CharField(max_length=40, unique=True)
    slot = models.CharField(max_length=300, unique=True)
    account = models.OneToOneField(
        BrokerAccount,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="mt5_agent",
    )
    link_request = models.ForeignKey(
        "LinkRequest", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    token = encrypt(models.CharField(max_length=100))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTING)
    detail = models.CharField(max_length=300, blank=True, default="")
    server = models.CharField(max_length=100, blank=True, default="")
    # False for an account logged in with its investor (read-only) password.
    trade_allowed = models.BooleanField(default=True)
    ping_ms = models.DecimalField(max_digits=8, decimal_places=1, null=True, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    restarts = models.PositiveIntegerField(default=0)
    # The master's positions and orders as the agent last reported them: handed
    # back at the next login so changes made while the agent was down are seen.
    baseline = models.JSONField(default=dict, blank=True)
    # The trading terms of the terminal's symbols (`brokers.mt5.requests.SymbolSpec`
    # fields), reported at login: the copier plans MT5 follower orders with them.
    symbols = models.JSONField(default=dict, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slot"]

    def __str__(self) -> str:
        return f"MT5 agent {self.agent_id} ({self.slot}): {self.status}"


class SignalSource(models.Model):
    """A webhook master: TradingView-style alerts POSTed to /hooks/<token>.

    Only the token's SHA-256 is stored (and its last four characters, for
    recognising it); the HMAC secret, needed to check signatures, is encrypted.
    Its positions (`SignalPosition`) are what its signals opened and have not
    closed; its followers copy them like any master's.
    """

    account = models.OneToOneField(
        BrokerAccount, on_delete=models.CASCADE, primary_key=True, related_name="signal_source"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    token_hint = models.CharField(max_length=8)
    hmac_secret = encrypt(models.CharField(max_length=100, blank=True, default=""))
    require_signature = models.BooleanField(default=False)
    dedup_window_s = models.PositiveIntegerField(default=60)
    position_aware = models.BooleanField(default=True)
    allow_pyramiding = models.BooleanField(default=False)
    # The equity qty_pct and risk_pct sizes refer to.
    equity = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("10000"))
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"signal source {self.account.label}"

    @classmethod
    def open(
        cls, owner: object, label: str, *, require_signature: bool = False, **options: object
    ) -> tuple["SignalSource", str, str]:
        """A new webhook master and its source, with its token and signing secret:
        the only time either exists in the clear. Call inside a transaction."""
        from brokers.hooks import new_secret, new_token, token_hash

        token = new_token()
        secret = new_secret() if require_signature else ""
        account = BrokerAccount.objects.create(
            owner=owner,
            venue=Venue.WEBHOOK,
            label=label,
            role=Role.MASTER,
            currency="USD",
            credentials_hint=token[-4:],
        )
        source = cls.objects.create(
            account=account,
            token_hash=token_hash(token),
            token_hint=token[-4:],
            hmac_secret=secret,
            require_signature=require_signature,
            **options,
        )
        return source, token, secret


class SignalPosition(models.Model):
    """A position (or pending order) a signal source holds."""

    source = models.ForeignKey(SignalSource, on_delete=models.CASCADE, related_name="positions")
    ref = models.CharField(max_length=40)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=SIDES)
    volume = models.DecimalField(max_digits=24, decimal_places=10)
    price = models.DecimalField(**PRICE)
    is_order = models.BooleanField(default=False)
    opened_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["opened_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "ref"], name="unique_signal_position"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.volume} {self.symbol} ({self.ref})"


class SignalLog(models.Model):
    """Every signal a source received, with what became of it."""

    class Outcome(models.TextChoices):
        EXECUTED = "executed", "Executed"
        REJECTED = "rejected", "Rejected"
        DUPLICATE = "duplicate", "Duplicate"
        FAILED = "failed", "Failed"

    source = models.ForeignKey(SignalSource, on_delete=models.CASCADE, related_name="signals")
    signal_id = models.CharField(max_length=40, unique=True)
    alert_id = models.CharField(max_length=100, blank=True, default="")
    action = models.CharField(max_length=16, blank=True, default="")
    symbol = models.CharField(max_length=32, blank=True, default="")
    payload = models.JSONField(default=dict)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.CharField(max_length=500, blank=True, default="")
    received_at = models.DateTimeField()
    # From the 202 to the events on the copier stream.
    latency_ms = models.DecimalField(max_digits=10, decimal_places=1, null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["source", "-id"])]

    def __str__(self) -> str:
        return f"signal {self.signal_id}: {self.outcome}"
