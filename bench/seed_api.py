"""The seed plan's API design (seeds/001, §3.3–3.6), kept as the baseline for bench/api_bench.py.

What is kept as the seed wrote it: FastAPI with CORS and an `@app.middleware("http")` logging
middleware, structlog configured as in the seed (its info lines are dropped by the stdlib root
level, exactly as in the seed), HTTPBearer + pyjwt RS256 validation with audience and issuer, the
regex keyword validator, and per request `duckdb.connect(path, read_only=True)` →
`execute(q).fetchdf()` → `df.to_dict(orient="records")` → the seed's response dict, serialized by
FastAPI (jsonable_encoder + JSONResponse) inside an `async def` endpoint.

What is changed, each in the seed's favour:
- the database is the benchmark's local snapshot file (no S3 download, no re-download every 120 s);
- the JWKS is read once from a file and the public key object is built once (the seed rebuilt it
  from the JWK on every request), so verifying a token costs what it costs in this API;
- the seed's slowapi limiter is not attached to any route in the seed, so there is none here either;
- pandas runs with the seed's pinned pandas 2.x string behaviour (object columns, NULL -> None): under
  pandas 3's default string dtype a NULL VARCHAR becomes NaN and the seed's JSONResponse fails with
  500 "Out of range float values are not JSON compliant" on any result holding one.

Configured by environment: SEED_DB_PATH, SEED_JWKS_PATH, SEED_AUDIENCE, SEED_ISSUER.
Served like the API: `gunicorn -k uvicorn_worker.UvicornWorker -w 2 --chdir bench seed_api:app`.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

import warnings

import duckdb
import jwt
import pandas as pd
import structlog
from fastapi import Depends, FastAPI, HTTPException, Query, Security
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jwt.exceptions import InvalidTokenError
from jwt.algorithms import RSAAlgorithm

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    pd.set_option("future.infer_string", False)  # pandas 2.x behaviour (the seed pins pandas==2.1.4)

DB_PATH = os.environ.get("SEED_DB_PATH", "")
JWKS_PATH = os.environ.get("SEED_JWKS_PATH", "")
AUDIENCE = os.environ.get("SEED_AUDIENCE", "")
ISSUER = os.environ.get("SEED_ISSUER", "")

ALLOWED_QUERY_PATTERNS = [r"^SELECT\s+.+\s+FROM\s+\w+", r"^SELECT\s+COUNT\(\*\)"]
BLOCKED_KEYWORDS = ["INSERT", "UPDATE", "DELETE", "DROP", "CREATE", "ALTER", "EXEC", "EXECUTE", "UNION", "--", ";--"]

structlog.configure(
    processors=[
        structlog.stdlib.filter_by_level,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    ],
    context_class=dict,
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)
logger = structlog.get_logger()
security = HTTPBearer()


class Auth0Validator:
    def __init__(self) -> None:
        self._keys: dict[str, Any] | None = None

    def _get_signing_key(self, token: str) -> Any:
        try:
            kid = jwt.get_unverified_header(token)["kid"]
            if self._keys is None:  # fetched once and cached, as the seed does with its JWKS
                jwks = json.loads(open(JWKS_PATH).read())
                self._keys = {k["kid"]: RSAAlgorithm.from_jwk(k) for k in jwks["keys"]}
            if kid in self._keys:
                return self._keys[kid]
            raise HTTPException(status_code=401, detail="Unable to find signing key")
        except HTTPException:
            raise
        except Exception as e:
            logger.error("auth.signing_key_error", error=str(e))
            raise HTTPException(status_code=401, detail="Invalid token header") from None

    def validate_token(self, token: str) -> dict[str, Any]:
        try:
            signing_key = self._get_signing_key(token)
            payload = jwt.decode(token, signing_key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
            logger.info("auth.token_validated", user_id=payload.get("sub"))
            return payload
        except InvalidTokenError as e:
            logger.warning("auth.token_invalid", error=str(e))
            raise HTTPException(status_code=401, detail="Invalid token") from None


auth_validator = Auth0Validator()


async def get_current_user(credentials: HTTPAuthorizationCredentials = Security(security)) -> dict[str, Any]:
    return auth_validator.validate_token(credentials.credentials)


@dataclass
class QueryResult:
    data: list[dict[str, Any]]
    columns: list[str]
    row_count: int
    execution_time_ms: float
    cached: bool = False


class QueryValidator:
    def __init__(self) -> None:
        self.blocked_patterns = [re.compile(rf"\b{k}\b", re.IGNORECASE) for k in BLOCKED_KEYWORDS]
        self.allowed_patterns = [re.compile(p, re.IGNORECASE) for p in ALLOWED_QUERY_PATTERNS]

    def validate(self, query: str) -> bool:
        for pattern in self.blocked_patterns:
            if pattern.search(query):
                raise ValueError("Query contains blocked keyword")
        for pattern in self.allowed_patterns:
            if pattern.match(query.strip()):
                return True
        raise ValueError("Query does not match allowed patterns")


class DuckDBEngine:
    def __init__(self) -> None:
        self.validator = QueryValidator()
        self._db_path = DB_PATH

    def _get_connection(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(self._db_path, read_only=True)

    def execute_query(self, query: str) -> QueryResult:
        start_time = time.time()
        self.validator.validate(query)
        conn = self._get_connection()
        try:
            result = conn.execute(query).fetchdf()
            execution_time = (time.time() - start_time) * 1000
            return QueryResult(data=result.to_dict(orient="records"), columns=list(result.columns),
                               row_count=len(result), execution_time_ms=execution_time)
        finally:
            conn.close()


query_engine = DuckDBEngine()

app = FastAPI(title="Analytics API (seed design)", version="1.0.0")
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=True, allow_methods=["GET", "POST"],
                   allow_headers=["*"])


@app.middleware("http")
async def logging_middleware(request, call_next):  # noqa: ANN001, ANN201 - as in the seed
    start_time = time.time()
    response = await call_next(request)
    duration = time.time() - start_time
    logger.info("request.completed", method=request.method, path=request.url.path,
                status_code=response.status_code, duration_ms=round(duration * 1000, 2),
                client_ip=request.client.host if request.client else None)
    return response


@app.get("/health")
async def health_check():  # noqa: ANN201 - no return annotation, as in the seed (it would become a response_model)
    return {"status": "healthy", "timestamp": time.time()}


@app.get("/query")
async def execute_query(q: str = Query(..., description="SQL query to execute"),  # noqa: B008
                        user: dict = Depends(get_current_user)):  # noqa: B008, ANN201
    try:
        result: QueryResult = query_engine.execute_query(q)
        return {"success": True, "data": result.data, "columns": result.columns, "row_count": result.row_count,
                "execution_time_ms": result.execution_time_ms}
    except ValueError as e:
        logger.warning("query.validation_failed", error=str(e), user_id=user.get("sub"))
        raise HTTPException(status_code=400, detail=str(e)) from None
    except Exception as e:
        logger.error("query.execution_failed", error=str(e), user_id=user.get("sub"))
        raise HTTPException(status_code=500, detail="Query execution failed") from None
