"""Pleo and connector credentials from Secrets Manager, through Powertools' cached parameters utility.

Powertools' parameters (which imports boto3) and the Pleo client (httpx) are imported on the first
secret read, not when a handler imports this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

if TYPE_CHECKING:
    from coa_sync.adapters.pleo import PleoCredentials
    from coa_sync.tokens import OAuthCredentials

CACHE_SECONDS = 300


class SecretError(ValueError):
    """The secret is missing or does not hold Pleo credentials (its value is never shown)."""


def secret_json(secret_name: str) -> Any:
    """A secret's decoded JSON value (cached for CACHE_SECONDS); errors name the secret, never its value."""
    from aws_lambda_powertools.utilities import parameters

    try:
        return parameters.get_secret(secret_name, transform="json", max_age=CACHE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        # Powertools raises it while handling Secrets Manager's error, without `from`: that error is the context.
        cause = exc.__cause__ or exc.__context__ or exc
        code = getattr(cause, "response", {}).get("Error", {}).get("Code")  # AccessDeniedException, ...
        raise SecretError(f"secret {secret_name!r} could not be read: {code or type(cause).__name__}") from None
    except parameters.exceptions.TransformParameterError:
        raise SecretError(f"secret {secret_name!r} is not JSON") from None


def pleo_credentials(secret_name: str) -> PleoCredentials | OAuthCredentials:
    """An API key or a static token; or an OAuth connection (tokenUrl, clientId, clientSecret, refreshToken),
    whose tokens the refresher reads fresh from the secret itself (coa_sync.tokens)."""
    from coa_sync.adapters.pleo import PleoCredentials
    from coa_sync.tokens import OAuthCredentials

    value = secret_json(secret_name)
    needs = "apiKey, accessToken, or tokenUrl, clientId, clientSecret and refreshToken (OAuth)"
    try:
        if isinstance(value, dict) and "tokenUrl" in value:
            return OAuthCredentials.model_validate(value)
        credentials = PleoCredentials.model_validate(value)
    except ValidationError:
        raise SecretError(f"secret {secret_name!r} must be an object with {needs}") from None
    if credentials.api_key is None and credentials.access_token is None:
        raise SecretError(f"secret {secret_name!r} must be an object with {needs}")
    return credentials


def webhook_secret(secret_name: str) -> str:
    value = secret_json(secret_name)
    if not isinstance(value, dict) or not isinstance(value.get("secret"), str) or len(value["secret"]) < 16:
        raise SecretError(f"secret {secret_name!r} must be an object with a 'secret' of at least 16 characters")
    return value["secret"]
