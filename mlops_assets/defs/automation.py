"""When automation materializes an unpartitioned asset."""

import dagster as dg


def follows_upstream() -> dg.AutomationCondition:
    """`eager()`, and once when automation first finds the asset missing.

    `eager()` alone never fills an asset that was missing before automation started. With
    every asset of the graph requested on the first tick of a fresh deployment, they run
    together in one run, not one run per level of the graph.
    """
    return (
        dg.AutomationCondition.eager() | dg.AutomationCondition.missing().newly_true()
    ).with_label("follows_upstream")
