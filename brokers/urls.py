from django.urls import path

from brokers import views, views_linking, views_signals, views_trading

app_name = "brokers"
position = "<int:pk>/positions/<int:position_id>"
order = "<int:pk>/orders/<int:order_id>"
urlpatterns = [
    path("", views.account_list, name="list"),
    path("new/", views.account_new, name="new"),
    path("link/exchange/", views_linking.exchange_link, name="link_exchange"),
    path("link/mt5/", views_linking.mt5_link, name="link_mt5"),
    path("signals/new/", views_signals.source_new, name="signal_new"),
    path("<int:pk>/signals/rotate/", views_signals.source_rotate, name="signal_rotate"),
    path("<int:pk>/signals/settings/", views_signals.source_settings, name="signal_settings"),
    path("<int:pk>/signals/revoke/", views_signals.source_revoke, name="signal_revoke"),
    path("link/<int:pk>/", views_linking.link_progress, name="link_progress"),
    path("link/<int:pk>/status/", views_linking.link_status, name="link_status"),
    path("<int:pk>/", views.account_detail, name="detail"),
    path("<int:pk>/trade/", views.account_trade, name="trade"),
    path("<int:pk>/role/", views.account_role, name="role"),
    path("<int:pk>/exchange-settings/", views.exchange_settings, name="exchange_settings"),
    path("<int:pk>/delete/", views.account_delete, name="delete"),
    path(f"{position}/close/", views_trading.position_close, name="close"),
    path(f"{position}/partial-close/", views_trading.position_partial_close, name="partial_close"),
    path(f"{position}/stops/", views_trading.position_modify, name="modify_position"),
    path(f"{order}/modify/", views_trading.order_modify, name="modify_order"),
    path(f"{order}/cancel/", views_trading.order_cancel, name="cancel_order"),
    path(f"{order}/fill/", views_trading.order_fill, name="fill_order"),
]
