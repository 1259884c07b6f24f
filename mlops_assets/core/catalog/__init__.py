"""The contribution catalog: one indexed database of every contribution's state and of the
accepted rows, so one more contribution costs its own rows, not every earlier one."""
