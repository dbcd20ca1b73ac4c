from celery import shared_task

from brokers.linking import validate_link_request


@shared_task(name="brokers.validate_link_request", ignore_result=True)
def validate_link(request_id: int) -> None:
    validate_link_request(request_id)


@shared_task(name="brokers.refresh_exchange_markets", ignore_result=True)
def refresh_exchange_markets() -> None:
    from brokers.venues.ccxt.market_cache import refresh_all

    refresh_all()
