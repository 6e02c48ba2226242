# The API image: planner + REST service, no torch. Migrations run when `ltd serve` starts.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY planner planner
COPY wire wire
COPY present present
COPY client client
COPY api api
COPY worker worker
COPY ltd ltd
RUN pip install --no-cache-dir ".[api,plot]"
RUN useradd --create-home ltd
USER ltd
EXPOSE 8000
CMD ["ltd", "serve", "--host", "0.0.0.0", "--port", "8000"]
