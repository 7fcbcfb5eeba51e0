"""The zipcode feature's place in the error contract."""

from __future__ import annotations

from refapi.errors import ApiError


class ZipcodeNotValid(ApiError):
    status = 400
    code = "ZIPCODE_NOT_VALID"
    title = "Zipcode Not Valid"


class ZipcodeNotFound(ApiError):
    status = 404
    code = "ZIPCODE_NOT_FOUND"
    title = "Zipcode Not Found"


class RiskFactorNotValid(ApiError):
    status = 422
    code = "RISK_FACTOR_NOT_VALID"
    title = "Risk Factor Not Valid"


class RiskTableNotValid(ApiError):
    """A risk table that cannot be imported; ``problems`` lists each error with its line."""

    status = 422
    code = "RISK_TABLE_NOT_VALID"
    title = "Risk Table Not Valid"

    def __init__(self, detail: str, *, problems: list[dict[str, object]]) -> None:
        super().__init__(detail, problems=problems)
        self.problems = problems
