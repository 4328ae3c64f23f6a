"""Who may work on our HITs: MTurk's system qualifications as requirements, and the qualification that blocks.

A blocked worker is one given our own qualification; the HIT type requires workers *not* to have it, so they
cannot even see our HITs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from labelflow.integrations.crowd.mturk.calls import call_mturk
from labelflow.integrations.crowd.mturk.config import MTurkConfig

if TYPE_CHECKING:
    from mypy_boto3_mturk.client import MTurkClient
    from mypy_boto3_mturk.type_defs import QualificationRequirementTypeDef

# MTurk's system qualification types (the same ids in the sandbox and in production).
APPROVAL_RATE_QUALIFICATION: Final = "000000000000000000L0"
APPROVED_HITS_QUALIFICATION: Final = "00000000000000000040"
LOCALE_QUALIFICATION: Final = "00000000000000000071"


def qualification_requirements(
    config: MTurkConfig, blocked_qualification_id: str
) -> list[QualificationRequirementTypeDef]:
    """The HIT type's requirements: the configured approval rate, approved HITs and locales, and not blocked."""
    requirements: list[QualificationRequirementTypeDef] = []
    for qualification, minimum in (
        (APPROVAL_RATE_QUALIFICATION, config.min_approval_rate),
        (APPROVED_HITS_QUALIFICATION, config.min_approved_hits),
    ):
        if minimum:
            requirements.append(
                {
                    "QualificationTypeId": qualification,
                    "Comparator": "GreaterThanOrEqualTo",
                    "IntegerValues": [minimum],
                    "ActionsGuarded": "Accept",
                }
            )
    if config.locales:
        requirements.append(
            {
                "QualificationTypeId": LOCALE_QUALIFICATION,
                "Comparator": "In",
                "LocaleValues": [{"Country": country} for country in config.locales],
                "ActionsGuarded": "Accept",
            }
        )
    requirements.append(
        {
            "QualificationTypeId": blocked_qualification_id,
            "Comparator": "DoesNotExist",
            "ActionsGuarded": "DiscoverPreviewAndAccept",
        }
    )
    return requirements


def find_or_create_blocked_qualification(client: MTurkClient, name: str) -> str:
    """The id of the account's qualification called ``name`` that marks blocked workers, created if missing."""
    listed = call_mturk(
        "ListQualificationTypes",
        None,
        client.list_qualification_types,
        Query=name,
        MustBeRequestable=False,
        MustBeOwnedByCaller=True,
        MaxResults=100,
    )
    found = [q["QualificationTypeId"] for q in listed.get("QualificationTypes", []) if q["Name"] == name]
    if found:
        return found[0]
    created = call_mturk(
        "CreateQualificationType",
        None,
        client.create_qualification_type,
        Name=name,
        Description="Workers whose answers labelflow's quality control found no better than chance.",
        QualificationTypeStatus="Active",
    )
    return created["QualificationType"]["QualificationTypeId"]
