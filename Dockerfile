# Two images from one file: the scorer (numpy + Starlette, no torch, no faust) and the
# worker (Faust stream processors and the learner).
#   docker build --target scorer -t streamrank-scorer .
#   docker build --target worker -t streamrank-worker .
FROM python:3.11-slim AS base
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY learner ./learner
COPY serving ./serving
COPY ops ./ops

FROM base AS scorer
RUN pip install .
EXPOSE 8000
CMD ["streamrank", "serve", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS worker
RUN pip install ".[worker]"
CMD ["streamrank", "worker"]
