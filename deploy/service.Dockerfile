# One image per service: only contracts, the kit and that service are installed.
#   docker build -f deploy/service.Dockerfile --build-arg SERVICE=contacts -t crm-contacts .
FROM python:3.11.11-slim-bookworm
ARG SERVICE
ENV CRM_SERVICE=${SERVICE} PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY constraints.txt ./
COPY contracts ./contracts
COPY services/kit ./services/kit
COPY services/${SERVICE} ./services/${SERVICE}
RUN pip install --no-cache-dir -c constraints.txt ./contracts ./services/kit "./services/${SERVICE}"
USER 10001
# Migrations are applied by the service at start, before it serves or consumes.
CMD ["sh", "-c", "exec python -m crm_${CRM_SERVICE}"]
