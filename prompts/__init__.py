"""mlift's bundled prompt files (data, not code).

This folder ships inside the wheel as the package ``mlift._prompts`` (through
the ``mlift/_prompts`` link) so ``mlift.prompts.load_prompts`` finds it from any
install. Layout: ``<stage>/<task>/v<N>.toml``, ``instruct/styles.toml`` and
``prompts.lock``.
"""
