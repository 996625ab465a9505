"""Developer tools: the ``kafka-autotrace`` command (view, doctor), behind the ``view`` extra."""
