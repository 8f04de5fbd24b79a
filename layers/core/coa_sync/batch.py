"""A Powertools batch processor for work that spans records.

BatchProcessor calls a handler once per record, but creates must go to Pleo together
(up to 1000 per call), so their outcome is known only once the whole batch is applied.
This processor hands the whole batch to one function and then reports each record with
BatchProcessor's own success/failure bookkeeping, so `process_partial_response` builds
the ReportBatchItemFailures response as usual.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord


class RetryLaterError(Exception):
    """The record may succeed on a later delivery."""


class WholeBatchProcessor(BatchProcessor):
    def __init__(self) -> None:
        # An all-failed batch is a normal answer here (Pleo down): report it, don't raise.
        super().__init__(EventType.SQS, raise_on_entire_batch_failure=False)

    def process(self) -> list[tuple]:
        records = [SQSRecord(record) for record in self.records]
        apply: Callable[[Sequence[SQSRecord]], set[str]] = self.handler
        retry = apply(records)
        results = []
        for record in records:
            if record.message_id in retry:
                try:
                    raise RetryLaterError(record.message_id)
                except RetryLaterError:
                    results.append(self.failure_handler(record, sys.exc_info()))
            else:
                results.append(self.success_handler(record, None))
        return results
