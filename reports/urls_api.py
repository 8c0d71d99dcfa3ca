from django.urls import path

from reports import api

urlpatterns = [
    path("reports/summary/", api.ReportSummaryApi.as_view(), name="reports-summary"),
    path("reports/carriers/", api.ReportCarriersApi.as_view(), name="reports-carriers"),
    path("exports/tickets.csv", api.TicketsExportApi.as_view(), name="export-tickets"),
    path("exports/remedies.csv", api.RemediesExportApi.as_view(), name="export-remedies"),
    path("exports/ledger.csv", api.LedgerExportApi.as_view(), name="export-ledger"),
]
