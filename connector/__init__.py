"""
A Twilio connector for workflow and automation engines.
"""

from __future__ import annotations
