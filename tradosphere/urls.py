from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import include, path

from tradosphere.health import healthz
from tradosphere.ops import operations


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("copier:dashboard")
    return render(request, "home.html")


urlpatterns = [
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("ops/", operations, name="ops"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("brokers/", include("brokers.urls")),
    path("", include("copier.urls")),
]
