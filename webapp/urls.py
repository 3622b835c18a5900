from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


def favicon(request):
    # Browsers and tools ask for /favicon.ico whatever the page says; the URL is looked up per
    # request, so it follows the static files' hashed names in production.
    return HttpResponseRedirect(static("favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("annotator.api_urls")),
    path("api/v1/", include("trainer.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("training/", include("trainer.urls")),
    path("", include("annotator.urls")),
]

handler400 = "webapp.errors.bad_request"
handler404 = "webapp.errors.not_found"
handler500 = "webapp.errors.server_error"
