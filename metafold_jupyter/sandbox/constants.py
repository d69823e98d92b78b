"""Fixed public values of the sandbox (identity, audience, plan limits).

These are deliberately public: the sandbox is a local emulator, and its
credentials unlock nothing but itself.
"""

from __future__ import annotations

SANDBOX_CLIENT_ID = "sandbox-client-id"
SANDBOX_CLIENT_SECRET = "sandbox-secret-not-for-production"
AUDIENCE = "https://api.metafold3d.com"
# Auth0 names machine-to-machine subjects "<client_id>@clients".
SANDBOX_USER = f"{SANDBOX_CLIENT_ID}@clients"
OTHER_USER = "google-oauth2|104857600000000000001"

LICENSE_PRODUCT = "Metafold Pro (sandbox)"

# Plan limits; quota = limit - usage.
PLAN_LIMITS = {"project": 100, "import": 500, "export": 1000, "simulation": 200}
USAGE_KEYS = ("project", "import", "export", "simulation")
