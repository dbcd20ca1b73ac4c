from django.urls import path

from copier import views

app_name = "copier"
urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/live/", views.dashboard_live, name="live"),
    path("links/", views.link_list, name="links"),
    path("links/<int:pk>/", views.link_detail, name="link"),
    path("links/<int:pk>/resume/", views.link_resume, name="link_resume"),
    path("links/<int:pk>/delete/", views.link_delete, name="link_delete"),
]
