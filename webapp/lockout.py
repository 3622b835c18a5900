"""What a locked-out login sees: the login page again, saying why and for how long (429)."""

from axes.helpers import get_cool_off
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def lockout_message(request: HttpRequest) -> str:
    cool_off = get_cool_off(request)
    if cool_off is None:
        wait = "until an administrator unlocks it"
    else:
        minutes = max(1, round(cool_off.total_seconds() / 60))
        unit = "minute" if minutes == 1 else "minutes"
        wait = f"for {minutes} {unit}, or until an administrator unlocks it"
    return f"Too many failed logins: this account or address is locked {wait}."


def locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    message = lockout_message(request)
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=429)
    form = AuthenticationForm(request)
    context = {"form": form, "locked_out": message, "next": request.POST.get("next", "")}
    return render(request, "registration/login.html", context, status=429)
