"""cypht-azure: set up Cypht's Outlook and Office365 OAuth in Microsoft Entra ID without the Azure portal."""

__version__ = "0.1.0"
