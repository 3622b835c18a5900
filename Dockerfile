# Prefloop's image: the web app (gunicorn), the Celery worker and beat all run from it
# (see docker-compose.yml). The worker needs a GPU build of torch: on Linux, pip's default
# torch==2.13.0 wheel is the CUDA build.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PREFLOOP_VAR_DIR=/data \
    HF_HUB_OFFLINE=1

WORKDIR /app

# Dependencies first, in their own layer, so a code change does not reinstall torch.
COPY pyproject.toml README.md ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', *deps])"

COPY . .
RUN pip install --no-deps . \
    && DJANGO_DEBUG=0 DJANGO_SECRET_KEY=collectstatic-only DATABASE_URL=sqlite:////tmp/build.db \
       python manage.py collectstatic --noinput \
    && useradd --create-home --uid 1000 prefloop \
    && mkdir -p /data \
    && chown prefloop:prefloop /data

USER prefloop
EXPOSE 8000
CMD ["gunicorn", "webapp.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
