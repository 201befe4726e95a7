# crmctl in a container: creates the topics of the registry on the compose Kafka.
FROM python:3.11.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY constraints.txt ./
COPY contracts ./contracts
COPY services/kit ./services/kit
COPY services/stack ./services/stack
RUN pip install --no-cache-dir -c constraints.txt ./contracts ./services/kit ./services/stack
USER 10001
ENTRYPOINT ["crmctl"]
