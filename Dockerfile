# Not exercised by CI (no Docker engine there); see README "Docker".
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ANOMALY_HOST=0.0.0.0 \
    ANOMALY_AUTH=required \
    ANOMALY_PORT=8000 \
    ANOMALY_DATABASE_URL=sqlite:////data/anomaly.db \
    MPLCONFIGDIR=/tmp/matplotlib
RUN useradd --create-home --uid 10001 anomaly \
 && mkdir /data && chown anomaly:anomaly /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER anomaly
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os,sys,urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/healthcheck' % os.environ.get('ANOMALY_PORT', '8000'), timeout=2).status != 200)"
CMD ["anomaly-api", "serve"]
