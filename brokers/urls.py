from django.urls import path

from brokers import views

app_name = "brokers"
urlpatterns = [
    path("", views.account_list, name="list"),
    path("new/", views.account_new, name="new"),
    path("<int:pk>/", views.account_detail, name="detail"),
    path("<int:pk>/trade/", views.account_trade, name="trade"),
    path("<int:pk>/role/", views.account_role, name="role"),
    path("<int:pk>/delete/", views.account_delete, name="delete"),
    path("<int:pk>/positions/<int:position_id>/close/", views.position_close, name="close"),
]
