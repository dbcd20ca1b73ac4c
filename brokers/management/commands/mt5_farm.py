import signal

from django.core.management.base import BaseCommand

from brokers.mt5.farm import Farm
from tradosphere.bus import sync_redis


class Command(BaseCommand):
    help = (
        "Run the MetaTrader 5 farm: assign terminal slots (MT5_TERMINAL_SLOTS), start and "
        "restart one terminal agent per MT5 account, and record what the agents report."
    )
    requires_system_checks: list[str] = []

    def handle(self, *args: object, **options: object) -> None:
        farm = Farm(sync_redis())
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        farm.setup()
        self.stdout.write(f"mt5 farm: {len(farm.slots)} terminal slot(s)")
        try:
            while not stopping:
                farm.step()
        finally:
            farm.stop_all()
