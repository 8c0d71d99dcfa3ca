from core.errors import Conflict, DomainError, InvalidInput, NotFound, PermissionDenied


class AccountNotFound(NotFound):
    default_detail = "Account not found."


class HitNotFound(NotFound):
    default_detail = "Hit not found."


class AccountNotEligible(DomainError):
    code = "account_not_eligible"
    default_detail = "Only buyer accounts are flagged, frozen or cleared here."


class AlreadyFlagged(Conflict):
    code = "already_flagged"
    default_detail = "The account is already flagged."


class AlreadyFrozen(Conflict):
    code = "already_frozen"
    default_detail = "The account is already frozen."


class NotRestricted(Conflict):
    code = "not_restricted"
    default_detail = "The account is neither flagged nor frozen."


class HitClosed(Conflict):
    code = "hit_closed"
    default_detail = "This hit has already been reviewed."


class VerificationRequired(DomainError):
    code = "verification_required"
    default_detail = "Verify the owner's registration details first (a passed check, recent and not used before)."


class VerificationFailed(VerificationRequired):
    code = "verification_failed"
    default_detail = "The registration details did not match; the account stays as it is."


__all__ = [
    "AccountNotEligible", "AccountNotFound", "AlreadyFlagged", "AlreadyFrozen", "HitClosed", "HitNotFound",
    "InvalidInput", "NotRestricted", "PermissionDenied", "VerificationFailed", "VerificationRequired",
]
