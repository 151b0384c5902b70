"""Labels of other apps that the web pages show (model choices), named here so that the web's message
catalogue carries their Chinese translations: the models mark them for translation, the catalogue that
translates them is the web's (portal/locale)."""

from django.utils.translation import gettext_noop

LABELS = (
    # AccessGrant.Status
    gettext_noop("Requested"),
    gettext_noop("Approved"),
    gettext_noop("Rejected"),
    gettext_noop("Revoked"),
    gettext_noop("Expired"),
    # access.Permission
    gettext_noop("View aggregates"),
    gettext_noop("View masked records"),
    gettext_noop("View records"),
    gettext_noop("View scores"),
    gettext_noop("Export records"),
    # Consumer.Status, Account.Status
    gettext_noop("Active"),
    gettext_noop("Frozen"),
    gettext_noop("Closed"),
    gettext_noop("Open"),
    gettext_noop("Delinquent"),
    # Account.Product
    gettext_noop("Wallet"),
    gettext_noop("Revolving credit line"),
    gettext_noop("Instalment loan"),
    gettext_noop("Cash loan"),
    gettext_noop("Money-market fund"),
    gettext_noop("Insurance"),
    # Merchant.Category
    gettext_noop("Groceries"),
    gettext_noop("Dining"),
    gettext_noop("Transport"),
    gettext_noop("Utilities and telecom"),
    gettext_noop("Electronics"),
    gettext_noop("Apparel"),
    gettext_noop("Online retail"),
    gettext_noop("Travel"),
    gettext_noop("Healthcare"),
    gettext_noop("Education"),
    gettext_noop("Entertainment"),
    gettext_noop("Online gaming"),
    # Transaction.Kind
    gettext_noop("Payment"),
    gettext_noop("Transfer in"),
    gettext_noop("Transfer out"),
    gettext_noop("Loan disbursement"),
    gettext_noop("Repayment"),
    gettext_noop("Fund purchase"),
    gettext_noop("Fund redemption"),
    gettext_noop("Insurance premium"),
    gettext_noop("Fee"),
    # Transaction.Channel
    gettext_noop("App"),
    gettext_noop("QR code"),
    gettext_noop("Point of sale"),
    gettext_noop("Online checkout"),
    gettext_noop("Bank transfer"),
    gettext_noop("Automatic debit"),
    # Segment.Kind
    gettext_noop("Product line"),
    gettext_noop("Region"),
    gettext_noop("Case list"),
    # AuditEvent.Outcome
    gettext_noop("Allowed"),
    gettext_noop("Denied"),
    gettext_noop("Error"),
    # ScoreRun.Kind, ScoreRun.Status
    gettext_noop("Full refresh"),
    gettext_noop("Incremental refresh"),
    gettext_noop("Running"),
    gettext_noop("Finished"),
    gettext_noop("Failed"),
)
